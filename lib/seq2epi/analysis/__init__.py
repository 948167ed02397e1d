"""What is made of a model: baselines, evaluation, interpretation, tracks, maps and figures (imports lab, data
and model)."""
