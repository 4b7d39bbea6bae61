"""Export to ONNX bundles and verify them against PyTorch under ONNX Runtime."""

from zoo.bundles.bundle import ExportResult, export_run
from zoo.bundles.check import verify_bundle
from zoo.bundles.manifest import Bundle, GraphEntry, Manifest, ParityReport
from zoo.bundles.verify import format_table

__all__ = ["Bundle", "ExportResult", "GraphEntry", "Manifest", "ParityReport", "export_run", "format_table",
           "verify_bundle"]
