"""AdaBERT (Chen et al., IJCAI 2020): task-adaptive compression by differentiable architecture
search. ``probes`` (task-useful knowledge of the teacher's layers), ``costs`` (per-op costs
measured on this machine), ``objective`` (search and retrain losses over the one loop), ``run``
(the ``lmdistill search`` pipeline: probes → search → derive → retrain). The model code is in
:mod:`lmdistill.models.adabert`."""
