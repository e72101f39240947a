-- Claim 3: how well the training tasks are optimized changes ICL generalization.
--
-- Methods. The same instruction tuning with four task-sampling methods: uniform, examples-
-- proportional (cap it_cap), temperature (T = it_temperature) and reverse annealing (T rising
-- from 1 to it_reverse_to over training). For each: the seen-task training loss, the loss on
-- held-out instances of the seen tasks, and the ICL loss on unseen tasks. Figure: grouped bars;
-- verdict: whether the methods differ in unseen-task ICL, and which one optimizes the seen tasks
-- best.
--
--   mtt run recipes/paper/sampling.lua [--quick] [--set key=value ...]
local mtt = require 'mtt'
mtt.recipe.study.main { name = 'paper/sampling', claims = { 'task_sampling' }, argv = arg, report = 'sampling' }
