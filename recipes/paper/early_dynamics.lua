-- Claim 5: early in instruction tuning, the change in transfer predicts ICL.
--
-- Methods. On the main instruction-tuning run, per held-out task: the change in transfer loss
-- and the change in ICL loss from step 0 (the pre-trained model) to an early checkpoint
-- (early_step), and from there to the end. Figures: two scatters; verdicts: Pearson and
-- Spearman r with p-values for each window.
--
--   mtt run recipes/paper/early_dynamics.lua [--quick] [--set key=value ...]
local mtt = require 'mtt'
mtt.recipe.study.main { name = 'paper/early_dynamics', claims = { 'early_dynamics' }, argv = arg,
  report = 'early_dynamics' }
