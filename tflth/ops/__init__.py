"""Pure tensor math (no Keras state): hard-concrete gates, targeted dropout, ..."""
