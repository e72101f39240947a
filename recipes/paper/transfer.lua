-- Claim 1: instruction tuning hurts transfer.
--
-- Methods. A small GPT is pre-trained on the default corpus, then instruction-tuned on the
-- training tasks (tasks/splits/default/train_tasks.txt) with an examples-proportional mixture in
-- the Tk-Instruct encoding. For each held-out task (test_tasks.txt: categories never seen in
-- training), copies of the base and of the tuned model are fine-tuned on n of the task's
-- training instances (n in transfer_n, a fixed number of AdamW steps and learning rate), in the
-- "unique ID" and in the in-context-exemplar encodings, and scored on the task's test
-- instances (mean target loss per token). Figure: fine-tuned loss vs n, base vs tuned, for both
-- encodings; verdict: the mean tuned-minus-base gap with its 95% CI.
--
--   mtt run recipes/paper/transfer.lua [--quick] [--set key=value ...]   (settings: lua/mtt/recipe/study.lua)
local mtt = require 'mtt'
mtt.recipe.study.main { name = 'paper/transfer', claims = { 'transfer_before_after' }, argv = arg,
  report = 'transfer' }
