// Cornerstone3D set-up, done once: rendering core, the DICOM image loader (its XHRs carry the
// session's Authorization header from the api module), and the tools a radiologist expects.
import * as core from '@cornerstonejs/core';
import dicomImageLoader from '@cornerstonejs/dicom-image-loader';
import * as tools from '@cornerstonejs/tools';
import { authHeaders } from '../../api';

export const TOOL_GROUP = 'yg-main';
let ready: Promise<void> | null = null;

export function initCornerstone(): Promise<void> {
  ready ??= (async () => {
    core.init();
    // A software GL rasterizer (no GPU driver: SwiftShader, llvmpipe) is slower than the CPU
    // renderer for 2D stacks; reading PCs in township hospitals often have no GPU driver.
    const caps = core.getRenderingCapabilities() as { webgl?: boolean; softwareRasterizer?: boolean };
    if (caps.softwareRasterizer) core.setUseCPURendering(true);
    dicomImageLoader.init({
      // Two decode workers: reading stations are modest PCs, and the UI thread needs a core.
      maxWebWorkers: Math.max(1, Math.min(2, (navigator.hardwareConcurrency || 2) - 1)),
      beforeSend: () => authHeaders(),
    });
    tools.init();
    for (const T of [tools.WindowLevelTool, tools.PanTool, tools.ZoomTool, tools.StackScrollTool,
                     tools.LengthTool, tools.AngleTool]) {
      tools.addTool(T);
    }
  })();
  return ready;
}

/** A tool group with W/L on the left button, pan middle, zoom right, scroll on the wheel. */
export function makeToolGroup(id: string): tools.Types.IToolGroup {
  tools.ToolGroupManager.destroyToolGroup(id);
  const group = tools.ToolGroupManager.createToolGroup(id)!;
  const { MouseBindings } = tools.Enums;
  for (const T of [tools.WindowLevelTool, tools.PanTool, tools.ZoomTool, tools.StackScrollTool,
                   tools.LengthTool, tools.AngleTool]) {
    group.addTool(T.toolName);
  }
  group.setToolActive(tools.WindowLevelTool.toolName,
    { bindings: [{ mouseButton: MouseBindings.Primary }] });
  group.setToolActive(tools.PanTool.toolName,
    { bindings: [{ mouseButton: MouseBindings.Auxiliary }] });
  group.setToolActive(tools.ZoomTool.toolName,
    { bindings: [{ mouseButton: MouseBindings.Secondary }] });
  group.setToolActive(tools.StackScrollTool.toolName,
    { bindings: [{ mouseButton: MouseBindings.Wheel }] });
  group.setToolPassive(tools.LengthTool.toolName);
  group.setToolPassive(tools.AngleTool.toolName);
  return group;
}

/** Put `toolName` on the left mouse button; the others go passive (their marks stay visible). */
export function setPrimaryTool(group: tools.Types.IToolGroup, toolName: string): void {
  const { MouseBindings } = tools.Enums;
  for (const name of [tools.WindowLevelTool.toolName, tools.LengthTool.toolName,
                      tools.AngleTool.toolName, tools.PanTool.toolName]) {
    if (name !== toolName && group.getToolOptions(name)) {
      if (name === tools.PanTool.toolName) {
        group.setToolActive(name, { bindings: [{ mouseButton: MouseBindings.Auxiliary }] });
      } else {
        group.setToolPassive(name);
      }
    }
  }
  group.setToolActive(toolName, { bindings: [{ mouseButton: MouseBindings.Primary }] });
}

export { core, dicomImageLoader, tools };
