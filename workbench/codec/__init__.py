"""Neural audio codec: SoundStream-style convolutional encoder/decoder with residual vector quantization.
Design, presets and measured figures: workbench/codec/README.md."""
