"""``finmcq export RUN_DIR --format lm-eval``: an lm-evaluation-harness task folder.

``lm_eval --tasks finmcq_krx --include_path DIR`` then measures any model the harness can run
(HF, vLLM with tensor/data parallel, OpenAI-compatible servers) on the run's questions — the
held-out ones when the build used ``--holdout``, else every delivered question.

Two tasks, one data file:

* ``finmcq_krx`` (``generate_until``): the step-1 prompt; the model writes its reasoning, as the
  step-1 pairs teach, and is scored (``exact_match``) on the letter the reasoning concludes
  with — ``strict-match`` reads the pairs' closing sentence ``따라서 정답은 X입니다``,
  ``flexible-extract`` the last stand-alone letter A–G. It needs only text generation, so it
  runs on chat backends too (``local-chat-completions``). The harness cannot feed a generation
  back as a second turn, so the letter is read from the reasoning rather than asked for in a
  step 2; ``finmcq eval`` runs the true two-step exchange.
* ``finmcq_krx_mc`` (``multiple_choice``): the step-1 prompt scored by the log-likelihood of
  each letter A–G after it (``acc``, ``acc_norm``): the direct one-step measure. It needs a
  backend with log-likelihoods (``hf``, ``vllm``, ``local-completions``), not a chat API.

The data lives in ``finmcq_krx.jsonl`` beside the YAML files; ``utils.py`` loads it from the
folder it sits in, so the folder can be copied to another machine and used from any directory.
"""

from __future__ import annotations

from pathlib import Path

from finmcq.evaluate.sets import load_eval_set
from finmcq.output import atomic_writer, write_jsonl
from finmcq.records import LETTERS
from finmcq.rundir import Run

TASK = "finmcq_krx"
DATA_FILE = f"{TASK}.jsonl"

_UTILS = f'''"""Loads the finmcq task data from this folder (`finmcq export --format lm-eval`).

lm-eval resolves `!function utils.load` relative to the YAML, so the folder works wherever it
is copied; `datasets.load_dataset("json", ...)` reads the file.
"""

import os

import datasets

HERE = os.path.dirname(os.path.abspath(__file__))


def load(**kwargs):
    return datasets.load_dataset("json", data_files={{"test": os.path.join(HERE, "{DATA_FILE}")}})
'''

_COMMON = """dataset_path: json
custom_dataset: !function utils.load
test_split: test
doc_to_text: "{{prompt}}"
"""

_GENERATE = f"""task: {TASK}
{_COMMON}output_type: generate_until
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until:
    - "### 질문:"
  max_gen_toks: 2048
  do_sample: false
  temperature: 0.0
filter_list:
  - name: strict-match
    filter:
      - function: regex
        regex_pattern: "정답은\\\\s*\\\\(?([A-G])\\\\)?\\\\s*입니다"
        group_select: -1
      - function: take_first
  - name: flexible-extract
    filter:
      - function: regex
        regex_pattern: "(?<![A-Za-z])([A-G])(?![A-Za-z])"
        group_select: -1
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

_MULTIPLE_CHOICE = f"""task: {TASK}_mc
{_COMMON}output_type: multiple_choice
doc_to_choice: {list(LETTERS)}
doc_to_target: answer_index
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def write_lm_eval(run: Run, out: Path, include_items: bool) -> list[Path]:
    """Write the task folder's data, YAML files and loader; returns the paths written."""
    del include_items  # the task needs only the questions
    eval_set = load_eval_set(str(run.run_dir))
    rows = [{"id": item.item_id, "prompt": item.prompt, "answer": item.answer,
             "answer_index": LETTERS.index(item.answer), "topic": item.topic,
             "difficulty": item.difficulty} for item in eval_set.items]
    written = [out / DATA_FILE]
    write_jsonl(written[0], rows)
    for name, text in ((f"{TASK}.yaml", _GENERATE), (f"{TASK}_mc.yaml", _MULTIPLE_CHOICE),
                       ("utils.py", _UTILS)):
        path = out / name
        with atomic_writer(path) as handle:
            handle.write(text)
        written.append(path)
    return written


LM_EVAL_FILES = (
    f"- `{DATA_FILE}`: one question per line, `{{id, prompt, answer, answer_index, topic, "
    "difficulty}`; `prompt` is the step-1 prompt exactly as the training pairs write it. The "
    "questions are the build's held-out ones (`--holdout`) when it has them, else every "
    "delivered question (which a model fine-tuned on this training file has seen).\n"
    f"- `{TASK}.yaml`: generative task — the model writes its step-1 reasoning and is scored "
    "on the letter it concludes with (`strict-match`: `따라서 정답은 X입니다`; "
    "`flexible-extract`: the last stand-alone letter A–G). Runs on every backend, chat APIs "
    "included.\n"
    f"- `{TASK}_mc.yaml`: multiple choice over A–G by log-likelihood (`acc`, `acc_norm`); "
    "needs a backend with log-likelihoods (hf, vllm, local-completions).\n"
    "- `utils.py`: loads the data file from this folder.\n\n"
    "```bash\n"
    "lm_eval --model vllm --model_args pretrained=MODEL,tensor_parallel_size=2 "
    f"--tasks {TASK},{TASK}_mc --include_path THIS_FOLDER\n"
    "lm_eval --model local-chat-completions --model_args model=MODEL,"
    "base_url=http://HOST:8000/v1/chat/completions "
    f"--tasks {TASK} --include_path THIS_FOLDER --apply_chat_template\n"
    "```"
)
