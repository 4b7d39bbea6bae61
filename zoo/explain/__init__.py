"""`zoo explain`: attributions through Captum (see docs/explain.md); torch and Captum are imported lazily."""
