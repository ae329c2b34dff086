import { defineConfig } from 'vite';

// Bundled at install time (scripts/install.sh runs `npm ci && npm run build`), served by the hub
// from viewer/static/dist: no CDN, the codecs' WebAssembly and the decode workers are local files.
export default defineConfig({
  base: '/',
  build: {
    outDir: 'static/dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    target: 'es2022',
    chunkSizeWarningLimit: 8000,
    sourcemap: false,
  },
  resolve: {
    // vtk.js pulls in xmlbuilder2, which extends Node's EventEmitter: use the browser port.
    alias: { events: 'events/' },
  },
  worker: { format: 'es' },
  optimizeDeps: {
    exclude: ['@cornerstonejs/dicom-image-loader'],
    include: ['dicom-parser'],
  },
  server: {
    // `npm run dev` against a hub on :8000.
    proxy: { '/api': 'http://127.0.0.1:8000' },
  },
});
