"""bhscore: the Brain Hierarchy score."""
