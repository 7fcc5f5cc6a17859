#!/usr/bin/env bash
# The InstructGPT recipe end to end, from the embedded SmolLM2-135M-Instruct and the data folder alone:
# SFT -> reward model -> PPO and PPO-ptx, then the same evaluation suite on base, SFT, PPO and PPO-ptx,
# the alignment-tax table and the HTML report. Every stage is skipped when its finished checkpoint or
# run record exists, so the same command resumes after a kill (the trainers also resume mid-stage).
#
#   EVALSUITE_DATA=/path/to/data demo/run.sh          (or: make demo)
#
# The sizes below fit a 2-core CPU in about an hour; every one can be set from the environment.
# On a GPU raise the ones marked "GPU:".
set -euo pipefail

DATA=${EVALSUITE_DATA:?set EVALSUITE_DATA to the datasets folder (README, "Data")}
OUT=${DEMO_DIR:-runs/demo}                 # checkpoints, runs, tax table and report go here
PYTHON=${PYTHON:-python3}                  # the Python that has evalsuite installed
MODEL=${DEMO_MODEL:-default}               # the base model (default: SmolLM2-135M-Instruct)
DEVICE=${DEVICE:-auto}

# Sizes
SFT_DEMOS=${SFT_DEMOS:-64}                 # GPU: 0 (all 339 demonstrations of the train part), --epochs 2
SFT_VALID=${SFT_VALID:-24}                 # validation prompts (never trained on)
RM_COMPARISONS=${RM_COMPARISONS:-0}        # 0: all 1,865 helpful-base comparisons of the train part
RM_TRAIN_LAYERS=${RM_TRAIN_LAYERS:-8}      # GPU: 0 (every layer)
RM_VALID=${RM_VALID:-100}
MAX_LENGTH=${MAX_LENGTH:-256}              # tokens per training sequence / PPO episode; GPU: 512
PPO_STEPS=${PPO_STEPS:-4}                  # GPU: 100 or more
PPO_BATCH=${PPO_BATCH:-8}                  # episodes per PPO step; GPU: 64
PPO_MINI_BATCH=${PPO_MINI_BATCH:-8}        # GPU: 16
PPO_EPOCHS=${PPO_EPOCHS:-2}                # passes over each rollout batch; GPU: 4 (the default)
PPO_TRAIN_LAYERS=${PPO_TRAIN_LAYERS:-8}    # top layers trained (policy and value); GPU: 0 (every layer)
PPO_LR=${PPO_LR:-1e-5}                     # above the default 3e-6 so that a few steps move the policy at all
RESPONSE_LENGTH=${RESPONSE_LENGTH:-48}     # GPU: 128
PTX_COEF=${PTX_COEF:-1.0}                  # PPO-ptx gamma
REWARD_PROMPTS=${REWARD_PROMPTS:-32}       # held-out prompts no stage trained on, for the reward table; GPU: 500
EVAL_LIMIT=${EVAL_LIMIT:-40}               # documents per task; GPU: 0 (every document)
WIKITEXT_LIMIT=${WIKITEXT_LIMIT:-2}        # articles (each up to 8,192-token windows); GPU: 0
RTP_LIMIT=${RTP_LIMIT:-20}                 # RealToxicityPrompts prompts ...; GPU: 0
RTP_K=${RTP_K:-5}                          # ... and sampled continuations each (the paper: 25)
EVAL_BATCH=${EVAL_BATCH:-auto}

SFT_DATA=(--data "$DATA/stanford_alpaca/seed_tasks.jsonl" --data "$DATA/self_instruct/user_oriented_instructions.jsonl")
# The reward model learns helpfulness (helpful-base), the preference PPO's prompts ask for: trained on both
# HH-RLHF files, a 135M model learns neither (docs/trainer.md). Its length expert keeps it from rewarding
# length for its own sake.
RM_DATA=(--data "$DATA/hh_rlhf/helpful-base/test.jsonl.gz" --length-expert)
PPO_PROMPTS=(--prompts "$DATA/hh_rlhf/helpful-base/test.jsonl.gz" --prompts "$DATA/stanford_alpaca/seed_tasks.jsonl")
PTX_DATA="$DATA/wikitext2/valid.txt"       # WikiText-2's valid split: evaluation measures test.txt
TASKS=truthfulqa_mc1,truthfulqa_mc2,crows_pairs,winogender,squad_v2,drop
CKPT=$OUT/ckpt
RUNS=$OUT/runs
evalsuite() { "$PYTHON" -m evalsuite "$@"; }
# stage NAME FILE: true (and says so) when FILE, which a finished stage leaves, is missing
stage() { if [ -e "$2" ]; then echo "== $1: done ($2)"; return 1; fi; echo "== $1 ($(date -u +%H:%M:%S))"; }
mkdir -p "$OUT"

# --- training: SFT and RM on the train part of the prompts, PPO on the held-out part ----------------
if stage sft "$CKPT/sft/evalsuite_manifest.json"; then
  evalsuite train sft --model "$MODEL" "${SFT_DATA[@]}" --split train --valid-fraction 0.1 --limit "$SFT_DEMOS" \
    --valid-limit "$SFT_VALID" --max-length "$MAX_LENGTH" --overlong skip --epochs 1 --batch-size 8 --lr 3e-5 \
    --save-every 2 --device "$DEVICE" --output "$CKPT/sft"
fi
if stage rm "$CKPT/rm/evalsuite_manifest.json"; then
  evalsuite train rm --model "$CKPT/sft" "${RM_DATA[@]}" --split train --valid-fraction 0.05 --limit "$RM_COMPARISONS" \
    --valid-limit "$RM_VALID" --max-length "$MAX_LENGTH" --overlong skip --train-layers "$RM_TRAIN_LAYERS" \
    --batch-size 8 --lr 5e-5 --epochs 1 --save-every 10 --eval-batch-size 16 \
    --demos "$DATA/stanford_alpaca/seed_tasks.jsonl" --device "$DEVICE" --output "$CKPT/rm"
fi
# PPO trains on the first PPO_STEPS x PPO_BATCH held-out prompts; the reward table uses the ones after them.
PPO_ARGS=(--policy "$CKPT/sft" --reward "$CKPT/rm" "${PPO_PROMPTS[@]}" --split heldout --overlong skip
          --max-length "$MAX_LENGTH" --response-length "$RESPONSE_LENGTH" --batch-size "$PPO_BATCH"
          --mini-batch-size "$PPO_MINI_BATCH" --ppo-epochs "$PPO_EPOCHS" --train-layers "$PPO_TRAIN_LAYERS"
          --lr "$PPO_LR" --limit $((PPO_STEPS * PPO_BATCH)) --max-steps "$PPO_STEPS"
          --save-every 2 --device "$DEVICE")
if stage ppo "$CKPT/ppo/evalsuite_manifest.json"; then
  evalsuite train ppo "${PPO_ARGS[@]}" --output "$CKPT/ppo"
fi
if stage ppo-ptx "$CKPT/ppo-ptx/evalsuite_manifest.json"; then
  evalsuite train ppo "${PPO_ARGS[@]}" --ptx-data "$PTX_DATA" --ptx-coef "$PTX_COEF" --output "$CKPT/ppo-ptx"
fi
if stage rewards "$OUT/rewards.json"; then
  "$PYTHON" demo/rewards.py --reward "$CKPT/rm" "${PPO_PROMPTS[@]}" --skip $((PPO_STEPS * PPO_BATCH)) \
    --limit "$REWARD_PROMPTS" --max-length "$MAX_LENGTH" --response-length "$RESPONSE_LENGTH" --device "$DEVICE" \
    --output "$OUT/rewards.json" "$CKPT/sft" "$CKPT/ppo" "$CKPT/ppo-ptx"
fi

# --- evaluation: one suite, three runs per checkpoint (each its own --limit) -------------------------
RUN_LIST=()
for name in base sft ppo ppo-ptx; do
  model=$CKPT/$name; [ "$name" = base ] && model=$MODEL
  for part in main wikitext rtp; do
    case $part in
      main) tasks=$TASKS limit=$EVAL_LIMIT ;;
      wikitext) tasks=wikitext limit=$WIKITEXT_LIMIT ;;
      rtp) tasks=realtoxicityprompts:k=$RTP_K limit=$RTP_LIMIT ;;
    esac
    run=$RUNS/$name-$part
    RUN_LIST+=("$run")
    if stage "run $name $part" "$run/results.json"; then
      limit_arg=(); [ "$limit" != 0 ] && limit_arg=(--limit "$limit")
      evalsuite run --model "$model" --tasks "$tasks" "${limit_arg[@]}" --data-dir "$DATA" --device "$DEVICE" \
        --batch-size "$EVAL_BATCH" --overwrite --output "$run"
    fi
  done
done

# --- the tax table (pairs from the recorded lineage), the report, the summary ------------------------
if stage tax "$OUT/tax/tax.json"; then
  evalsuite tax "${RUN_LIST[@]}" --output "$OUT/tax"
fi
if stage report "$OUT/report.html"; then
  evalsuite report "${RUN_LIST[@]}" --tax "$OUT/tax" --title "evalsuite demo: base, SFT, PPO, PPO-ptx" \
    -o "$OUT/report.html"
fi
"$PYTHON" demo/summary.py --rewards "$OUT/rewards.json" "${RUN_LIST[@]}"
echo "report: $OUT/report.html"
