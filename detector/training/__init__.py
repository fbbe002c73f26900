"""Training and evaluation toolkit: datasets, augmentation, training loop, calibration,
evaluation in the paper's shape (Table 2, Fig. 3). Needs the ``train`` extra."""
