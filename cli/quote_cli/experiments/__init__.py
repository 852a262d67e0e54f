"""`quote experiment`: A/B runs of mods over a prompt set, scored, compared with bootstrap intervals, reported."""
