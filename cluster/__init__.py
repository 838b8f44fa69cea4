"""Everything around the RL runtime, one room per concern.

Dependencies point one way, top to bottom:

    cli, main, play     the commands (`revisor ...`, `python -m cluster.main`)
    study               both arms of the study from one init, and its report
    job                 one training job: phases, driver, fleet, broker, queue, evaluation
    plan                where every process goes and whether it fits, before launch
    results             evaluation points, compute, recall and the run report
    settings            the settings models, YAML and overrides, checks against the model
"""
