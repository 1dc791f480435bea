"""The names every layer shares, in one leaf (imports nothing, so the CLI can check arguments without torch).

Usage: from vwlib.roles import TASKS, ROLES, PROFILE_NAMES
"""

TASKS = ("generation", "detection", "classification")  # what a word is trained for; each task names its model
ROLES = (*TASKS, "scorer")  # the models of a profile: the three task models and the generation scorer
PROFILE_NAMES = ("paper", "mini", "tiny", "paper-random")  # vwlib.models.profiles.PROFILES holds their models
