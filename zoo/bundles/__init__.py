"""Export to ONNX bundles and verify them against PyTorch under ONNX Runtime."""

from zoo.bundles.bundle import ExportResult, export_run
from zoo.bundles.graph_checks import format_table
from zoo.bundles.manifest import Bundle, GraphEntry, Manifest, ParityReport
from zoo.bundles.verification import verify_bundle

__all__ = ["Bundle", "ExportResult", "GraphEntry", "Manifest", "ParityReport", "export_run", "format_table",
           "verify_bundle"]
