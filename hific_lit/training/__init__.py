"""Training: the Lightning stages (HiFiC's rate-distortion and GAN stages, GC2018's), their objectives and
schedules, LPIPS, warm start, callbacks, the inference export and ``train(cfg)``. The networks import no Lightning."""
