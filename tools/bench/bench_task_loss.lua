-- The cost of the per-task loss logging of instruction tuning (Instruct.loss_by_task, called by
-- mtt.train every step) against the training step it accompanies, on batches of the shipped
-- collection from the quickstart's base model (run recipes/quickstart.lua first).
--   ./build/mtt run tools/bench/bench_task_loss.lua
local mtt = require 'mtt'
local model, tok = mtt.recipe.model_dir.load(arg[1] or "runs/quickstart/pretrain/model")
model:train()
local tasks = mtt.tasks.load(mtt.root .. '/tasks/splits/default/train_tasks.txt', {tasks_dir = mtt.root .. '/build/data/tasks'})
local mix = mtt.data.mixture{tasks = tasks, rate = 'proportional', cap = 3000, seed = 1}
local data = mtt.data.instruct{mixture = mix, tokenizer = tok, block_size = 128, format = 'tk', k = 2, seed = 1}
local clock = os.clock
local t_step, t_lbt = 0, 0
for i = 1, 30 do
  local idx, tg, info = data:batch('train', 16)
  local t0 = clock()
  local logits, loss = model(idx, tg)
  loss:backward()
  model:zero_grad()
  local t1 = clock()
  data:loss_by_task(logits, tg, info)
  local t2 = clock()
  if i > 5 then t_step, t_lbt = t_step + (t1 - t0), t_lbt + (t2 - t1) end
end
print(string.format('forward+backward %.1f ms, loss_by_task %.1f ms per step: %.1f%%', t_step / 25 * 1e3, t_lbt / 25 * 1e3, 100 * t_lbt / t_step))
