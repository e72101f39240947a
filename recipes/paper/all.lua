-- The whole study: the five claims of "Multi-Task Transfer Matters During Instruction-Tuning"
-- (Mueller, Dredze, Andrews 2024) on shared runs: one pre-training run, one instruction-tuning
-- run per sampling method and replay ratio, each trained once; evaluations are cached in the
-- runs' metrics.jsonl. Writes runs/paper/report/report.md (every table, plot and verdict) with
-- the CSV behind each plot, and prints the verdict lines.
--
--   mtt run recipes/paper/all.lua [--quick] [--set key=value ...]   (settings: lua/mtt/recipe/study.lua)
--   mtt report runs/paper      (re-renders the report from the run folder)
local mtt = require 'mtt'
mtt.recipe.study.main { name = 'paper/all', argv = arg }
