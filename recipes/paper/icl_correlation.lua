-- Claim 2: transfer and in-context learning are correlated across unseen tasks.
--
-- Methods. After instruction tuning (as in transfer.lua), each held-out task gets an ICL score
-- (the k-shot loss of its test targets with k exemplars drawn from its training instances by a
-- seed of their own) and a transfer score (the loss after fine-tuning on n examples). Figure:
-- transfer vs ICL, one point per task, with the least-squares line; verdict: Pearson and
-- Spearman r with p-values.
--
--   mtt run recipes/paper/icl_correlation.lua [--quick] [--set key=value ...]
local mtt = require 'mtt'
mtt.recipe.study.main { name = 'paper/icl_correlation', claims = { 'transfer_vs_icl' }, argv = arg,
  report = 'icl_correlation' }
