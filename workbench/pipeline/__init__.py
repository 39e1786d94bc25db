"""What spans the stages: the 16-minute extrapolation (tokenizer -> LM -> SoundStorm -> codec, measured), the
Gradio demo, `reproduce` and the papermill runner. The one package allowed to import every stage; no stage
imports it.
"""
