"""Fine-tune the lens finder for a few steps and write its validation metrics as JSON; run as a
script (1 process) or under ``torchrun --nproc_per_node 2`` by tests/test_finetune.py."""

import json
import os
import sys

import torch
import astrozoo
from astrozoo.tasks.lens_finding.simulate import simulate

torch.set_num_threads(1)
# DES-like cutouts (an extra band, another pixel scale and depth): training has work to do
des = dict(survey="des", bands=("g", "r", "i", "z"), size=48)
x, y, _ = simulate(128, 4242, **des)
xv, yv, _ = simulate(128, 4243, **des)
read = dict(bands=list("griz"), pixel_scale=0.263, scale_max_rtol=0.5)
ft = astrozoo.finetune("lens-finding", (x, y), (xv, yv), bands="griz", survey="des",
                       read_options=read, epochs=4, batch_size=32, seed=0, progress=False,
                       log=lambda m: None)
# the last epoch: the same number of steps in both runs (the best epoch can differ by one when
# two epochs' validation AUROC is within BatchNorm's per-shard statistics)
last = ft.fit_result.history[-1]
if int(os.environ.get("RANK", "0")) == 0:
    with open(sys.argv[1], "w") as f:
        json.dump({"processes": ft.fit_result.processes, "steps": ft.fit_result.steps,
                   "auroc": last["auroc"], "loss": last["loss"]}, f)
