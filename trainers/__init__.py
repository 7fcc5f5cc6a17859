"""The bundled trainer (SFT, reward model, PPO / PPO-ptx), installed as ``evalsuite.trainers``."""
