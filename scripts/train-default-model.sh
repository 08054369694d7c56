#!/usr/bin/env bash
# Trains and evaluates the model the platform ships (models/tfesi-cnn/<version>), from nothing but
# this repository: every number in its card and in models/tfesi-cnn/README.md comes from one run
# of this script. Everything it generates is synthetic.
#
#   scripts/train-default-model.sh [--step cohorts|train|evaluate|install|all]   (default: all)
#
# 1. cohorts: two synthetic cohorts, each through its own development stack (own Postgres
#    database, own Redis database, own data directory) exactly as a hospital's data would go:
#    `tfesi demo` renders the studies, sends them over DICOM C-STORE and gRPC, registers episodes
#    and injections, waits for the pipeline's predictions, plays the 2-month follow-ups and creates
#    a snapshot; the training job's `fetch` then writes the snapshot's Parquet export and the
#    tensors `Preprocess.Prepare` returns (what inference sees). The training cohort (seed
#    TRAIN_SEED, TRAIN_PATIENTS patients) and the evaluation cohort (seed EVAL_SEED, never used
#    for training) never share a database.
# 2. train: the image + clinical model (the platform's default) and the image-only model (the
#    paper's design), offline from the training cohort's files, configs/default-model.toml.
# 3. evaluate: both models, a clinical-only logistic model and the generator's Bayes-optimal
#    probabilities on the evaluation cohort (AUC with DeLong CIs, paired tests).
# 4. install: copies the image + clinical model under models/ with its evaluation and provenance.
#
# Needs: a debug build (`cargo build --workspace`), Postgres and Redis (scripts/setup.sh), and
# .venv-training (scripts/setup-training.sh). Time on the 2-core machine: see models/tfesi-cnn/README.md.
# Environment: TRAIN_SEED, TRAIN_PATIENTS, EVAL_SEED, EVAL_PATIENTS, WORK (data/default-model),
# CONFIG (configs/default-model.toml, relative to training/), AUXILIARY (0; 1 adds the training
# cohort's image findings as auxiliary targets, as configs/per-slice.toml expects).
set -euo pipefail
cd "$(dirname "$0")/.."

TRAIN_SEED="${TRAIN_SEED:-1500}"
TRAIN_PATIENTS="${TRAIN_PATIENTS:-1500}"
EVAL_SEED="${EVAL_SEED:-2500}"
EVAL_PATIENTS="${EVAL_PATIENTS:-500}"
WORK="${WORK:-data/default-model}"
TFESI="${TFESI:-target/debug/tfesi}"
PYTHON="${PYTHON:-$PWD/.venv-training/bin/python}"
CONFIG="${CONFIG:-configs/default-model.toml}"
AUXILIARY="${AUXILIARY:-0}"
step="all"
while (($#)); do
    case "$1" in
        --step) step="${2:?--step needs a value}"; shift 2 ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "train-default-model.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$step" in cohorts|train|evaluate|install|all) ;; *) echo "unknown step $step" >&2; exit 2 ;; esac
[[ -x "$TFESI" ]] || { echo "no $TFESI: cargo build --workspace first" >&2; exit 1; }
[[ -x "$PYTHON" ]] || { echo "no $PYTHON: scripts/setup-training.sh first" >&2; exit 1; }
mkdir -p "$WORK"
log() { echo "[$(date -u +%H:%M:%S)] $*"; }

# One cohort through its own stack: cohort NAME SEED PATIENTS REDIS_DB. A subshell, so its
# exports stay in it and its EXIT trap (stop the stack) runs exactly once, however it ends; a
# RETURN trap set in a function outlives it and fires again on later functions' returns.
cohort() (
    local name="$1" seed="$2" patients="$3" redis_db="$4"
    local dir="$WORK/$name"
    if [[ -f "$dir/done" ]]; then
        log "$name cohort: already in $dir (remove it to redo)"
        return
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    # A fresh database each time: the snapshot must hold this cohort and nothing else.
    local database="tfesi_model_$name"
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $database" >/dev/null
    redis-cli -n "$redis_db" FLUSHDB >/dev/null
    local url="postgres://postgres@127.0.0.1:5432/$database"
    local service
    for service in INGEST PREPROCESS REGISTRY; do
        export "TFESI_${service}__DATABASE__URL=$url"
    done
    for service in INGEST PREPROCESS; do
        export "TFESI_${service}__REDIS__URL=redis://127.0.0.1:6379/$redis_db"
    done
    export TFESI_AUTH_SECRET_FILE="$dir/stack/auth/hs256.secret"
    log "$name cohort: starting the stack (database $database, Redis db $redis_db)"
    "$TFESI" dev --data-dir "$dir/stack" --log warn >"$dir/stack.log" 2>&1 &
    local stack_pid=$!
    # Stop the stack whatever happens below.
    trap "kill $stack_pid 2>/dev/null; wait $stack_pid 2>/dev/null || true" EXIT
    local waited=0
    until "$TFESI" status >/dev/null 2>&1; do
        sleep 2
        waited=$((waited + 2))
        if ! kill -0 "$stack_pid" 2>/dev/null || ((waited > 240)); then
            echo "the $name stack did not start; its log:" >&2
            tail -20 "$dir/stack.log" >&2
            exit 1
        fi
    done
    log "$name cohort: tfesi demo --patients $patients --seed $seed"
    "$TFESI" --json demo --patients "$patients" --seed "$seed" --wait-s 3600 \
        --cohort-key "$dir/cohort-key.csv" >"$dir/demo.json"
    local snapshot
    snapshot="$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshot"]["snapshot_id"])' "$dir/demo.json")"
    log "$name cohort: snapshot $snapshot; fetching its export and tensors"
    TFESI_CLIENT_TOKEN="$("$TFESI" token --role mlops --subject default-model | tail -1)" \
        PYTHONPATH=training "$PYTHON" -m tfesi_training fetch --snapshot "$snapshot" --out "$dir/data"
    echo "$snapshot" >"$dir/snapshot-id"
    touch "$dir/done"
    log "$name cohort: done"
)

if [[ "$step" == cohorts || "$step" == all ]]; then
    cohort train "$TRAIN_SEED" "$TRAIN_PATIENTS" 5
    cohort eval "$EVAL_SEED" "$EVAL_PATIENTS" 6
fi

if [[ "$step" == train || "$step" == all ]]; then
    for inputs in image_clinical image; do
        run="$WORK/run-$inputs"
        extra=()
        [[ "$inputs" == image ]] && extra=(--image-only --name tfesi-cnn-image-only)
        log "training ($inputs) into $run"
        rm -rf "$run"
        # AUXILIARY=1: the generator's per-level findings of the training cohort as auxiliary
        # targets (a hospital's equivalent: the findings of the radiology reports); never the
        # evaluation key. The shipped model was trained without them.
        [[ "$AUXILIARY" == 1 ]] && extra+=(--auxiliary-key "../$WORK/train/cohort-key.csv")
        (cd training && PYTHONPATH=. "$PYTHON" -m tfesi_training train --config "$CONFIG" --no-register \
            --offline "../$WORK/train/data/snapshot.parquet" "../$WORK/train/data/tensors" \
            --out "../$run" "${extra[@]}") 2>&1 | tee "$WORK/train-$inputs.log"
    done
fi

model_dir() { find "$WORK/run-$1/model" -mindepth 2 -maxdepth 2 -type d | head -1; }

if [[ "$step" == evaluate || "$step" == all ]]; then
    log "evaluating on the independent cohort (seed $EVAL_SEED)"
    PYTHONPATH=training "$PYTHON" -m tfesi_training evaluate \
        --eval "$WORK/eval/data/snapshot.parquet" "$WORK/eval/data/tensors" \
        --key "$WORK/eval/cohort-key.csv" \
        --train "$WORK/train/data/snapshot.parquet" \
        --model "image_clinical=$(model_dir image_clinical)" \
        --model "image_only=$(model_dir image)" \
        --out "$WORK/evaluation.json" | tee "$WORK/evaluation.txt"
fi

if [[ "$step" == install || "$step" == all ]]; then
    source_dir="$(model_dir image_clinical)"
    version="$(basename "$source_dir")"
    target="models/tfesi-cnn/$version"
    log "installing $source_dir as $target"
    rm -rf "$target"
    mkdir -p "$target"
    cp "$source_dir/model.onnx" "$source_dir/model.json" "$target/"
    cp "$WORK/evaluation.json" "$target/evaluation.json"
    cp "$WORK/run-image_clinical/report.json" "$target/training-report.json"
    "$PYTHON" - "$target/provenance.json" <<EOF
import json, sys
json.dump({
    "synthetic": True,
    "command": "scripts/train-default-model.sh",
    "training_cohort": {"seed": $TRAIN_SEED, "patients": $TRAIN_PATIENTS,
                        "snapshot_id": open("$WORK/train/snapshot-id").read().strip()},
    "evaluation_cohort": {"seed": $EVAL_SEED, "patients": $EVAL_PATIENTS,
                          "snapshot_id": open("$WORK/eval/snapshot-id").read().strip()},
    "config": "training/$CONFIG",
    "auxiliary_targets": $([[ "$AUXILIARY" == 1 ]] && echo True || echo False),
}, open(sys.argv[1], "w"), indent=2)
EOF
    # The model's README: every figure from the files above, plus its CPU latency measured now.
    "$PYTHON" scripts/lib/model_readme.py "$target" "$WORK/eval/data/tensors"
    log "installed $target"
fi
