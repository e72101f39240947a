-- recipes/quickstart.lua: the whole study, reduced to run in under 30 minutes on 2 CPU cores.
--
-- A small GPT pre-trained on the default corpus, instruction-tuned on the shipped task
-- collection with three sampling methods and one replay ratio, then evaluated on held-out
-- tasks by in-context learning and by fine-tuning transfer; the five claims of "Multi-Task
-- Transfer Matters During Instruction-Tuning" each end in a table, a plot and a verdict in
-- runs/quickstart/report/report.md. The full-size version is recipes/paper/all.lua; every
-- setting is in lua/mtt/recipe/study.lua (QUICK are the reductions used here).
--
--   mtt run recipes/quickstart.lua [--set key=value ...]
local mtt = require 'mtt'
mtt.recipe.study.main { name = 'quickstart', argv = arg, preset = 'quick' }
