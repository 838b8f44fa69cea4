"""How a model family takes its inputs, built the same way wherever a model runs.

Both the rollout side (rollout_workers/: the episode runner tokenising each turn, the HF engine,
vLLM's prompt preparation) and the learner (learner/model.py, the SFT trainer) turn dialogues
and images into model inputs; they must agree token for token, or the learner scores other
inputs than the ones the engine sampled from. learner/ and rollout_workers/ are siblings that
never import each other for this, and contracts/ holds types only, so the implementation lives
here, below both: how a dialogue becomes tokens through the family's chat template
(`dialogue.DialogueTokens`), and how images enter (`vision`: processor loading, image-token
expansion, the collation of vision inputs). It imports contracts and no other Revisor package.
"""
