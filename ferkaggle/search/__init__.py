"""Search CNN configurations with Optuna within a time budget, on one machine or many.

Inputs: prepared data, a search space (TOML under ferkaggle/configs/spaces/: a base preset, named
trials, and distributions over dotted config keys), a per-worker budget in seconds, and a
study storage (an embedded SQLite file under runs/searches/ by default, or any SQLAlchemy
URL such as postgresql://user@host/db shared by many workers).
Outputs: one completed `cnn` run per finished or pruned trial (pruned ones say so in
run.json `search.state` and in their summary), the Optuna study (trials, parameters,
per-epoch values, which worker ran what), and `runs/searches/<study>/search.json`, a
summary of the study as this worker last saw it.

The engine: the space's named trials are enqueued first (once, by the worker that creates
the study); then the sampler (TPE by default) proposes configurations from the
distributions. After every epoch the Keras pruning callback of optuna-integration reports
the stop-split accuracy to the pruner (asynchronous successive halving by default,
Hyperband optional), which stops weak trials at rungs min_epochs * eta^k. Selection never
looks at the holdout: the objective and the pruner see only `Prepared.stopping_split`'s
stop rows; the holdout-val score of each run is recorded (by `cnn.record.record_run`) for the
leaderboard alone.

Budget: each worker stops when the next trial's first rung (or a resumed trial's next epoch)
no longer fits, and a trial never starts an epoch it cannot finish. Every trial plans its LR
schedule toward max_epochs or the end of the budget, whichever comes first (re-planned each
epoch from its pace), so the worker's last trial anneals with the budget. With equal shares and
a space's `least_epochs`, `plan` keeps as many of the named trials as this box's measured pace
trains to that many epochs each, before the first starts (a slow box trains fewer, longer).

Resumable and fault tolerant: trials checkpoint every epoch (runs/searches/<study>/trials/).
Ctrl-C puts the interrupted trial's continuation at the head of the study's queue; a worker
that dies (SIGKILL, power loss) stops its heartbeat, and after the grace period another
worker fails the trial as stale and retries it (RetryHeartbeatStaleTrialCallback). Either
way the continuation resumes from the original trial's last epoch checkpoint when it can see
it (same machine or a shared runs directory): at most the epoch in progress is lost.
Re-running the same command continues the study; finished trials are never retrained.

The modules: `spaces` reads the user's TOML spaces (and the --budget text); `study` opens
the storage and creates or joins the study; `optuna_adapter` holds the few Optuna internals
the worker needs (nothing else touches one); `plan` fits the named trials to the box's pace;
`worker` runs trials; `stage` is the
`ferkaggle search` stage (one worker, search.json, the table, `ferkaggle pull`).
"""
