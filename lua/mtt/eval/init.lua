-- mtt.eval: evaluations of a language model on tasks (lua/mtt/eval/README section in
-- lua/mtt/README.md): icl.lua (k-shot loss, rank classification, generation), transfer.lua
-- (fine-tuning transfer to held-out tasks, and the base-vs-tuned gap), score.lua (batched
-- log-likelihoods and greedy generation with stop strings), rng.lua (keyed draws).
local icl = require 'mtt.eval.icl'
local transfer = require 'mtt.eval.transfer'

return {
  icl = icl.icl,
  transfer = transfer.transfer,
  transfer_gap = transfer.transfer_gap,
  new_scratch = transfer.new_scratch,
  score = require 'mtt.eval.score',
  rng = require 'mtt.eval.rng',
}
