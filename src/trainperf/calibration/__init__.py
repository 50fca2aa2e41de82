"""Input-pipeline calibration: measure DataLoader settings instead of guessing them."""
