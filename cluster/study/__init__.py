"""The study (`revisor study`): SFT and RL arms from one init at matched training compute,
the stored study and its figures and tables (`revisor study-report`)."""
