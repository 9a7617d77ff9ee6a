"""The build pipeline: spec → fetch → volume → seed → boot + hooks → seal check → publish."""
