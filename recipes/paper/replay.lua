-- Claim 4: replay of pre-training data during instruction tuning mitigates forgetting.
--
-- Methods. Instruction tuning with an examples-proportional mixture, without replay and with a
-- fraction of every batch (replay_ratios) taken from the pre-training corpus stream. At every
-- checkpoint (dense early, sparse later) each held-out task gets a transfer score (loss after
-- fine-tuning on track_n examples) and an ICL score (track_k-shot loss). Figures: both
-- trajectories per replay ratio; verdict: the final no-replay minus replay transfer loss, 95% CI.
--
--   mtt run recipes/paper/replay.lua [--quick] [--set key=value ...]
local mtt = require 'mtt'
mtt.recipe.study.main { name = 'paper/replay', claims = { 'replay' }, argv = arg, report = 'replay' }
