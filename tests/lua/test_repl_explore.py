#!/usr/bin/python3
"""test_repl_explore.py: the REPL's exploration commands, driven through a pseudo-terminal as a
user would type them (tests/lua/test_repl.py covers the Lua basics).

Set-up (non-interactive, `mtt run`): in a fresh folder, a BPE tokenizer trained on a small
generated text, a tiny GPT trained 30 steps by mtt.train into runs/toy-train (config.json,
metrics.jsonl, ckpt/), a hand-written metrics file runs/toy/metrics.jsonl with known values, and
a Super-NaturalInstructions task file tasks/task900_toy.json. The set-up script also computes the
references with the trained model still in memory (not through :load): greedy model:generate, the
log-likelihood of a continuation from the model's own loss, mtt.eval.icl rows, mtt.tasks.prompt.

Then, through the pty: :help, :runs, :metrics (summary and table), :plot (fits 80 columns, axis
labels are the data's range), :load (run, checkpoint and step), :gen (equals the reference text),
:score (equals the reference log-likelihood; a ranking), :task (summary, three formats), :eval
(equals the reference rows), summaries of a model, a Task, a mixture and a run, Tab completion of
commands and their arguments, errors and recovery, Ctrl-C during a long :gen with the model and
globals intact afterwards, and the history of one session recalled with the Up arrow in the next.
Usage: /usr/bin/python3 tests/lua/test_repl_explore.py path/to/mtt"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_repl  # noqa: E402  (the pty driver)
from test_repl import Session  # noqa: E402

MTT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else 'build/mtt')
test_repl.MTT = MTT  # the sessions start it from the test's own folder
PROMPT = rb'mtt> '
ANSI = re.compile(rb'\x1b\[[0-9;?]*[A-Za-z]|\x07|\r')

SETUP = r'''
local mtt = require 'mtt'
local cjson = require('cjson').new()
mtt.threads(1)
local words = {'the', 'lord', 'said', 'unto', 'moses', 'and', 'he', 'went', 'into', 'land', 'of', 'light'}
local lines, s = {}, 7
for i = 1, 400 do
  local w = {}
  for j = 1, 6 + i % 5 do s = (s * 1103515245 + 12345) % 2147483648; w[j] = words[s % #words + 1] end
  lines[i] = table.concat(w, ' ') .. '.'
end
local f = assert(io.open('corpus.txt', 'w')); f:write(table.concat(lines, '\n')); f:close()
local tok = mtt.tokenizer.train{files = {'corpus.txt'}, vocab_size = 300}
local model = mtt.nn.GPT({vocab_size = tok.vocab_size, n_positions = 128, n_embd = 32, n_layer = 1, n_head = 2},
  {generator = mtt.Generator(1)})
local data = mtt.data.corpus{files = {'corpus.txt'}, tokenizer = tok, block_size = 16, seed = 1}
mtt.train{model = model, data = data, steps = 30, batch_size = 8, lr = 1e-2, run_dir = 'runs/toy-train',
  ckpt_every = 10, keep_checkpoints = 5, log_every = 5, eval_every = 10, eval_batches = 2, progress = false}
tok:save('runs/toy-train/tokenizer.json')
model:eval()
local ref = {vocab = tok.vocab_size}
-- greedy continuation, as model:generate makes it
local ids = model:generate(tok:encode('the lord said'), {max_new_tokens = 24, temperature = 0, stop = {tok.eot_id}})
ref.gen = tok:decode(ids)
-- log-likelihood of ' unto moses' after 'the lord said', from the model's mean loss
local p, c = tok:encode('the lord said'), tok:encode(' unto moses')
local all = {}
for _, v in ipairs(p) do all[#all + 1] = v end
for _, v in ipairs(c) do all[#all + 1] = v end
local idx, tgt = {}, {}
for i = 1, #all - 1 do idx[i] = all[i]; tgt[i] = i >= #p and all[i + 1] or -100 end
local _, loss = mtt.no_grad(function()
  return model(mtt.tensor({idx}, {dtype = 'i32'}), mtt.tensor({tgt}, {dtype = 'i32'}), {ignore_index = -100})
end)
ref.score = -loss:item() * #c
ref.score_n = #c
-- a task, its prompts and an ICL evaluation
mtt.io.makedirs('tasks')
local inst = {}
for i = 1, 40 do
  local a = words[i % #words + 1]
  inst[i] = {id = 'task900-' .. i, input = 'word ' .. a .. ' ' .. i, output = {i % 2 == 0 and 'yes' or 'no'}}
end
local task_json = {Contributors = {'test'}, Source = {'synthetic'}, Categories = {'Toy Classification'},
  Definition = {'Say yes when the number is even, else no.'},
  ['Positive Examples'] = {{input = 'word the 2', output = 'yes', explanation = '2 is even'},
                           {input = 'word he 3', output = 'no', explanation = '3 is odd'}},
  ['Negative Examples'] = {}, Instances = inst}
f = assert(io.open('tasks/task900_toy.json', 'w')); f:write(cjson.encode(task_json)); f:close()
local task = mtt.tasks.load('tasks/task900_toy.json')[1]
ref.task_test = #task.test
ref.task_first_id = task.test[1].id
ref.prompt_tk = mtt.tasks.prompt(task, task.test[1], {format = 'tk', k = 2, seed = 0})
local rows = mtt.eval.icl{model = model, tokenizer = tok, tasks = {task}, k = {0, 1}, seed = 0, max_instances = 8,
  progress = false}
ref.icl = {}
for _, r in ipairs(rows) do
  if r.task ~= '*' then ref.icl[#ref.icl + 1] = {k = r.k, metric = r.metric, value = r.value, n = r.n} end
end
-- a model folder as the recipes write it
mtt.io.makedirs('models/toy')
local cfg = {}
for k, v in pairs(model.config) do cfg[k] = v end
cfg.model_type = 'gpt2'
f = assert(io.open('models/toy/config.json', 'w')); f:write(cjson.encode(cfg)); f:close()
mtt.io.save_safetensors('models/toy/model.safetensors', model:state_dict({tied = false}), {format = 'pt'})
tok:save('models/toy/tokenizer.json')
f = assert(io.open('ref.json', 'w')); f:write(cjson.encode(ref)); f:close()
'''


def clean(b):
    return ANSI.sub(b'', b).decode('utf-8', errors='replace')


class Repl(Session):
    def run(self, line, what=None):
        """Types a line, waits for the next prompt; returns the text printed in between."""
        start = len(self.out)
        self.line(line)
        self.expect(rb'\n', 'the line is taken: ' + (what or line))
        m = self.expect(PROMPT, 'prompt after ' + (what or line))
        return clean(self.out[start:m.start()])


def check(cond, msg, text=''):
    if not cond:
        raise AssertionError(msg + ('\n--- output ---\n' + text if text else ''))


def number_after(label, text):
    m = re.search(re.escape(label) + r'\s*(-?[0-9.]+(?:e[-+]?[0-9]+)?)', text)
    check(m is not None, f'no number after {label!r}', text)
    return float(m.group(1))


def close(s):
    for _ in range(5):
        time.sleep(0.3)
        s.send(b'\x04')
        end = time.time() + 2
        while time.time() < end:
            s.read_some(0.1)
            pid, st = os.waitpid(s.pid, os.WNOHANG)
            if pid:
                return st
        s.send(b'\x03')
    raise AssertionError('the REPL did not exit on Ctrl-D')


def main():
    tmp = tempfile.mkdtemp(prefix='mtt_repl_explore_')
    os.chdir(tmp)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    with open('setup.lua', 'w') as f:
        f.write(SETUP)
    r = subprocess.run([MTT, 'run', 'setup.lua'], env=env, capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, 'set-up failed: ' + r.stdout + r.stderr)
    ref = json.load(open('ref.json'))
    os.makedirs('runs/toy', exist_ok=True)
    with open('runs/toy/metrics.jsonl', 'w') as f:
        for step in range(10, 101, 10):
            row = {'step': step, 'loss': 5 - step / 50, 'lr': 0.001}
            if step % 50 == 0:
                row['val_loss'] = 4.5 - step / 100
                row['tasks'] = {'a': step / 1000}
            f.write(json.dumps(row) + '\n')
        f.write('not json\n')
    history = os.path.join(tmp, 'history')
    os.environ['LANG'] = 'C.UTF-8'
    s = Repl(history)
    s.expect(PROMPT, 'first prompt')

    # :help lists every command with one line
    out = s.run(':help')
    for c in ['runs', 'metrics', 'plot', 'load', 'gen', 'score', 'task', 'eval', 'help']:
        check(re.search(r'^\s+:' + c + r'\b', out, re.M), f':help lacks :{c}', out)

    # :runs lists both runs with their last step and checkpoints
    out = s.run(':runs')
    check(re.search(r'^toy\s+100\s+3\s+3.5\s+0\s+no', out, re.M), ':runs row of toy', out)
    check(re.search(r'^toy-train\s+30\s+.*\s3 \(last 30\)\s+no', out, re.M), ':runs row of toy-train', out)

    # :metrics: keys with n, first, last, min, max; a nested key; the bad line is counted
    out = s.run(':metrics toy')
    check(re.search(r'^loss\s+10\s+10\s+4.8\s+3\s+3\s+4.8$', out, re.M), ':metrics loss row', out)
    check(re.search(r'^val_loss\s+2\s+50\s+4\s+3.5\s+3.5\s+4$', out, re.M), ':metrics val_loss row', out)
    check(re.search(r'^tasks\.a\s+2\s', out, re.M), ':metrics flattens nested objects', out)
    check('1 lines of metrics.jsonl are not JSON' in out, ':metrics counts a bad line', out)
    out = s.run(':metrics toy loss val_*')
    check(re.search(r'^\s*50\s+4\s+4$', out, re.M), ':metrics table row of step 50', out)
    check(re.search(r'^\s*60\s+3.8\s+-$', out, re.M), ':metrics table: a missing value is -', out)

    # :plot: 80 columns, y labels are the range, x labels the steps
    out = s.run(':plot toy loss')
    lines = [ln for ln in out.split('\n') if ln.strip()]
    check(all(len(ln) <= 80 for ln in lines), ':plot fits 80 columns', out)
    check(re.search(r'^4\.8 \u2502', out, re.M) and re.search(r'^  3 \u2502', out, re.M), ':plot y labels', out)
    check(re.search(r'^\s+10\s+step\s+100$', out, re.M), ':plot x labels', out)
    braille = sum(1 for ch in out if 0x2801 <= ord(ch) <= 0x28ff)
    check(braille >= 40, f':plot draws the line ({braille} braille cells)', out)
    out = s.run(':plot toy loss val_loss')
    check('* loss   + val_loss' in out and '+' in out.split('\n')[3:][0] + ''.join(out.split('\n')[3:]),
          ':plot of two keys has a legend and both marks', out)

    # completion: a command name, a run name, a metric key
    redraw = rb'(?:\x07|\r|\x1b\[\d*G)*'  # libedit may redraw the line around the completion
    s.send(':me\t')
    s.expect(rb':me' + redraw + rb'trics', 'Tab completes :me to :metrics')
    s.send(' to\t')
    s.expect(rb'to' + redraw + rb'y', 'Tab completes a run name (toy and toy-train share toy)')
    s.send(' val\t')
    s.expect(rb'val' + redraw + rb'_loss', 'Tab completes a metric key')
    s.line('')
    m = s.expect(PROMPT, 'prompt after the completed :metrics')
    check(re.search(rb'step\s+val_loss', s.out[m.start() - 400:m.start()]), 'the completed command ran',
          clean(s.out[-600:]))

    # errors name what is wrong, and the session goes on
    out = s.run(':metrics nosuch')
    check("'nosuch' not found" in out, ':metrics of a missing run', out)
    out = s.run(':frobnicate')
    check("unknown command ':frobnicate'" in out and ':metrics' in out, 'unknown command', out)
    out = s.run(':gen hello')
    check('no model loaded' in out, ':gen without a model', out)
    out = s.run('x_before = 1234')
    out = s.run(':load toy-train 15')
    check('no checkpoint of step 15' in out and '10, 20, 30' in out, ':load of a missing step', out)

    # :load a checkpoint by step, the run (newest checkpoint), a model folder
    out = s.run(':load toy-train 20')
    check('(step 20)' in out and f'vocabulary {ref["vocab"]}' in out, ':load toy-train 20', out)
    out = s.run(':load runs/toy-train/ckpt/step-10.safetensors')
    check('(step 10)' in out, ':load of a checkpoint file', out)
    out = s.run(':load models/toy')
    check('loaded models/toy' in out, ':load of a model folder', out)
    out = s.run(':load toy-train')
    check('(step 30)' in out and '1 layers, width 32' in out, ':load of a run', out)

    # :gen (greedy) equals model:generate's text
    out = s.run(':gen -n 24 the lord said')
    check(('the lord said' + ref['gen']) in out, ':gen equals the reference ' + repr(ref['gen']), out)
    # :score equals the log-likelihood from the model's loss
    out = s.run(':score the lord said ||| unto moses')
    got = number_after('log-likelihood', out)
    check(abs(got - ref['score']) < 1e-3, f':score {got} vs reference {ref["score"]}', out)
    check(f'over {ref["score_n"]} tokens' in out, ':score token count', out)
    out = s.run(':score the lord said ||| unto moses ||| zzz qqq')
    check(re.search(r'^1\s+" unto moses"\s+\d+\s+' + re.escape(f'{ref["score"]:.4g}'), out, re.M),
          ':score ranking row', out)

    # printing: a model, a run
    out = s.run('model')
    check('params' in out and 'GPT: ' in out and 'transformer.wte' in out, 'a model prints its summary', out)
    out = s.run('mtt.repl.run("toy")')
    check('Run runs/toy: 10 metric rows, last step 100' in out, 'a run prints its summary', out)

    # :task: summary, prompts in three formats with token counts; the global `task`
    out = s.run(':task task900_toy')
    check('Task(task900_toy' in out and 'Say yes when the number is even' in out, ':task summary', out)
    for fmt in ['tk', 'id', 'exemplars']:
        check(f"-- format '{fmt}'" in out, f':task shows format {fmt}', out)
    check(re.search(r"format 'tk': 2 demonstrations; \d+ tokens: prompt \d+, target \d+", out), ':task token counts', out)
    first_line = ref['prompt_tk'].split('\n')[0]
    check('  | ' + first_line in out, ':task shows the tk prompt as mtt.tasks.prompt makes it', out)
    out = s.run('#task.test')
    check(re.search(r'^' + str(ref['task_test']) + '$', out, re.M), 'the global task is set', out)
    out = s.run('task')
    check('Task(task900_toy' in out and 'definition:' in out and 'outputs:' in out, 'a Task prints its summary', out)
    out = s.run('mtt.data.mixture{tasks = {task}}')
    check('mixture at step 1' in out and 'task900_toy' in out, 'a mixture prints its rates', out)

    # :eval equals mtt.eval.icl's rows
    out = s.run(':eval -n 8 task900_toy 0 1')
    for r in ref['icl']:
        pat = rf"^task900_toy\s+{r['k']}\s+0\s+{r['metric']}\s+(\S+)\s+{r['n']}$"
        m = re.search(pat, out, re.M)
        check(m is not None, f':eval row k={r["k"]} {r["metric"]}', out)
        check(abs(float(m.group(1)) - r['value']) <= 1e-3 * max(1, abs(r['value'])),
              f':eval {r["metric"]} {m.group(1)} vs {r["value"]}', out)

    # Ctrl-C during a long :gen; the model, its mode and the globals are intact
    s.line(':gen -n 100000 -e 0 the')
    time.sleep(1.5)
    s.send(b'\x03')
    s.expect(rb'interrupted', 'Ctrl-C interrupts :gen')
    s.expect(PROMPT, 'prompt after the interrupt')
    out = s.run('=x_before, model.training, mtt.is_grad_enabled()')
    check('1234\tfalse\ttrue' in out, 'state after the interrupt', out)
    out = s.run(':gen -n 24 the lord said')
    check(('the lord said' + ref['gen']) in out, ':gen after the interrupt gives the same text', out)

    st = close(s)
    if os.environ.get('MTT_REPL_TRANSCRIPT'):  # for reading what the session showed
        with open(os.environ['MTT_REPL_TRANSCRIPT'], 'w') as f:
            f.write(clean(s.out))
    check(os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0, f'exit status {st}')

    # history across sessions: the Up arrow brings back the last line of the previous session
    s2 = Repl(history)
    s2.expect(PROMPT, 'first prompt of the second session')
    time.sleep(0.5)
    s2.send(b'\x1b[A')
    s2.expect(rb':gen -n 24 the lord said', 'Up arrow recalls the last command of the first session')
    s2.send('\r')
    s2.expect(rb'no model loaded', 'the recalled line runs in the new session (which has no model)')
    s2.expect(PROMPT, 'prompt after the recalled line')
    out = s2.run(':metrics toy loss')
    check(re.search(r'^\s*100\s+3$', out, re.M), 'the second session works', out)
    close(s2)
    text = open(history, encoding='utf-8', errors='replace').read()
    check(':plot\\040toy\\040loss' in text or ':plot toy loss' in text, 'history file has commands', text)

    os.chdir('/')
    shutil.rmtree(tmp, ignore_errors=True)
    print('test_repl_explore: :help :runs :metrics :plot :load :gen :score :task :eval, summaries, completion, '
          'errors, Ctrl-C and history work')


if __name__ == '__main__':
    main()
