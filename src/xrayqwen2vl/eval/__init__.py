"""Evaluation of generated reports: NLG metrics, clinical efficacy, diversity, baselines, report."""
