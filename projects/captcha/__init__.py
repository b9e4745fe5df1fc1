"""Reading text captchas: a convnet, bidirectional GRUs and CTC, on generated or your own captchas."""
