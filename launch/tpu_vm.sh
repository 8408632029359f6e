#!/usr/bin/env bash
# Runs primus_jax.main on every worker of a Cloud TPU VM (one host or a multi-host slice):
# clones or updates the repository on the workers, bootstraps their .venv with jax[tpu], then
# starts the same command everywhere with --config.distributed.initialize=True, which lets
# jax.distributed.initialize() find the coordinator, process count and process id itself.
#
#   export TPU_NAME=my-v5e-16 ZONE=us-west4-a PROJECT=my-project
#   export PRIMUS_REPO_URL=https://github.com/<you>/primus_jax.git
#   bash launch/tpu_vm.sh -- --config=configs/primus_hapt.py --workdir=gs://my-bucket/runs/hapt
#   bash launch/tpu_vm.sh --dry-run -- --workdir=gs://my-bucket/runs/hapt   # print, run nothing
#
# Options (a flag wins over its environment variable):
#   --tpu NAME          TPU_NAME          the TPU VM (required)
#   --zone ZONE         ZONE              its zone (required)
#   --project ID        PROJECT           Google Cloud project ("" = gcloud's default)
#   --repo URL          PRIMUS_REPO_URL   git URL the workers clone (required unless --no-setup)
#   --branch REF        PRIMUS_BRANCH     branch or tag to check out (default: main)
#   --remote-dir DIR    PRIMUS_REMOTE_DIR checkout on the workers, relative to the login
#                                         directory or absolute (default: primus_jax)
#   --extras LIST       PRIMUS_EXTRAS     extras for launch/bootstrap.sh (default: text,hapt,gcs:
#                                         uci_hapt/minilm and gs:// workdirs)
#   --python BIN        PRIMUS_PYTHON     interpreter for the workers' .venv (default: python3).
#                                         The project needs Python >= 3.11; Ubuntu 22.04 TPU
#                                         images ship 3.10, so install one (e.g. python3.11
#                                         and python3.11-venv) in your image and pass it here.
#   --env KEY=VALUE     (repeatable)      set on the workers, e.g. TFDS_DATA_DIR=/mnt/shared/tfds
#   --no-setup          skip clone/update and bootstrap (workers already set up)
#   --setup-only        only clone/update and bootstrap
#   --detach            start the job under nohup and return; output goes to
#                       <remote-dir>/logs/tpu_vm.log on each worker
#   --dry-run           (or DRY_RUN=1) print the gcloud commands instead of running them
#   -- ARGS             passed to `python -m primus_jax.main`. --workdir is required;
#                       --config defaults to configs/primus_hapt.py.
#
# Nothing here holds credentials: gcloud uses your own login (`gcloud auth login`).
#
# Workdir: with several workers it must be one location that all of them see, because orbax
# writes each checkpoint from all processes together: a gs:// bucket (the [gcs] extra, in the
# default --extras; the workers' service account needs write access), or a shared file system
# mounted on every worker (Filestore/NFS, gcsfuse). A single-host TPU VM can also use a local
# path. Running the same command again resumes from the latest checkpoint there. The TFDS
# data_dir must stay local (ArrayRecord files are read from local disk only).
#
# Data: each worker builds uci_hapt/minilm into its own ~/tensorflow_datasets on first use
# (about a minute, offline). If TFDS_DATA_DIR points to one shared directory instead, build
# the dataset there once first (`.venv/bin/python launch/prepare_data.py --config=...` on one
# worker), so that the workers do not race to write the same dataset.
#
# jax on TPU: bootstrap installs the CPU pins of constraints.txt; this script then adds
# `pip install -c constraints.txt "jax[tpu]"`, which installs the libtpu matching the pinned
# jax from PyPI.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }

tpu="${TPU_NAME:-}"
zone="${ZONE:-}"
project="${PROJECT:-}"
repo_url="${PRIMUS_REPO_URL:-}"
branch="${PRIMUS_BRANCH:-main}"
remote_dir="${PRIMUS_REMOTE_DIR:-primus_jax}"
extras="${PRIMUS_EXTRAS:-text,hapt,gcs}"
python="${PRIMUS_PYTHON:-python3}"
dry_run="${DRY_RUN:-0}"
setup=1
run=1
detach=0
envs=()
args=()

die() {
  echo "tpu_vm.sh: $*" >&2
  exit 2
}
need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --tpu) need_value "$@"; tpu="$2"; shift 2 ;;
    --zone) need_value "$@"; zone="$2"; shift 2 ;;
    --project) need_value "$@"; project="$2"; shift 2 ;;
    --repo) need_value "$@"; repo_url="$2"; shift 2 ;;
    --branch) need_value "$@"; branch="$2"; shift 2 ;;
    --remote-dir) need_value "$@"; remote_dir="$2"; shift 2 ;;
    --extras) need_value "$@"; extras="$2"; shift 2 ;;
    --python) need_value "$@"; python="$2"; shift 2 ;;
    --env)
      need_value "$@"
      [[ $2 =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env takes KEY=VALUE, got '$2'"
      envs+=("$2")
      shift 2
      ;;
    --no-setup) setup=0; shift ;;
    --setup-only) run=0; shift ;;
    --detach) detach=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; args=("$@"); break ;;
    *) die "unknown option '$1' (arguments for primus_jax.main go after --; see --help)" ;;
  esac
done

[[ -n $tpu ]] || die "set TPU_NAME or --tpu"
[[ -n $zone ]] || die "set ZONE or --zone"
[[ $setup == 0 || -n $repo_url ]] || die "set PRIMUS_REPO_URL or --repo (or pass --no-setup)"
[[ $setup == 1 || $run == 1 ]] || die "--no-setup and --setup-only leave nothing to do"
if [[ $run == 1 ]]; then
  [[ " ${args[*]-} " == *" --workdir="* ]] ||
    die "give --workdir=... after -- (on a multi-host slice, a directory all workers share)"
  [[ " ${args[*]-} " == *" --config="* ]] || args=("--config=configs/primus_hapt.py" "${args[@]}")
  [[ " ${args[*]} " == *" --config.distributed.initialize="* ]] ||
    args+=("--config.distributed.initialize=True")
fi

# Quotes one word for a POSIX shell, leaving plain words readable.
q() {
  if [[ $1 =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}
join_quoted() {
  local out="" w
  for w in "$@"; do out+="${out:+ }$(q "$w")"; done
  printf '%s' "$out"
}

# One gcloud ssh to all workers; prints it instead under --dry-run.
on_all_workers() {
  local cmd=(gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone")
  [[ -z $project ]] || cmd+=(--project "$project")
  cmd+=(--worker=all --command "$1")
  if [[ $dry_run == 1 ]]; then
    join_quoted "${cmd[@]}"
    echo
  else
    "${cmd[@]}"
  fi
}

dir="$(q "$remote_dir")"
if [[ $setup == 1 ]]; then
  setup_cmd="set -e; if [ -d $dir/.git ]; then"
  setup_cmd+=" git -C $dir fetch --quiet --depth=1 origin $(q "$branch")"
  setup_cmd+=" && git -C $dir checkout --quiet --force -B $(q "$branch") FETCH_HEAD;"
  setup_cmd+=" else git clone --quiet --depth=1 --branch $(q "$branch") $(q "$repo_url") $dir; fi;"
  setup_cmd+=" cd $dir;"
  setup_cmd+=" PRIMUS_PYTHON=$(q "$python") PRIMUS_EXTRAS=$(q "$extras") bash launch/bootstrap.sh;"
  setup_cmd+=" .venv/bin/python -m pip install --quiet -c constraints.txt 'jax[tpu]'"
  [[ $dry_run == 1 ]] && echo "# 1. clone or update $repo_url ($branch) and bootstrap, on all workers"
  on_all_workers "$setup_cmd"
fi
if [[ $run == 1 ]]; then
  job="$(join_quoted .venv/bin/python -m primus_jax.main "${args[@]}")"
  [[ ${#envs[@]} -eq 0 ]] || job="env $(join_quoted "${envs[@]}") $job"
  if [[ $detach == 1 ]]; then
    run_cmd="cd $dir && mkdir -p logs && nohup $job > logs/tpu_vm.log 2>&1 < /dev/null &"
  else
    run_cmd="cd $dir && $job"
  fi
  [[ $dry_run == 1 ]] && echo "# 2. the job, one process per worker"
  on_all_workers "$run_cmd"
fi
