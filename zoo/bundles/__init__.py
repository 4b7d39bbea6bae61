"""Export to ONNX bundles and verify them against PyTorch under ONNX Runtime."""

from zoo.bundles.bundle import ExportResult, export_run, verify_bundle
from zoo.bundles.verify import format_table

__all__ = ["ExportResult", "export_run", "format_table", "verify_bundle"]
