"""``python -m dicom_node``: run the node in the foreground (same as ``yigong node``)."""

from dicom_node.cli import app

if __name__ == "__main__":
    app()
