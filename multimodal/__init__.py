"""How a model family takes images, built the same way wherever a Hugging Face model runs.

Both the rollout engines (rollout_workers/engine/: the HF engine, vLLM's prompt preparation)
and the learner (learner/model.py, the SFT trainer) turn the stored prompt ids and images into
model inputs; they must agree token for token, or the learner scores different inputs from the
ones the engine sampled from. learner/ and rollout_workers/ are siblings that never import each
other for this, and contracts/ holds types only, so the implementation lives here, below both:
processor loading (`vision.load_processor`), image-token expansion and the collation of vision
inputs (`vision.hf_vision_inputs`, `vision.batch_vision_inputs`). It imports torch and
transformers, and no other Revisor package."""
