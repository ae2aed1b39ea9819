"""The paper's baselines: the n-NN MLP, Table 2, and reference scores fitted on a run's own train split."""
