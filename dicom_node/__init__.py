"""Branch DICOM node: receive from modalities, spool durably, forward to the hub.

Modules follow the parts of the job (see docs/node.md): ``scp`` (pynetdicom SCP handlers),
``spool`` (the durable queue), ``ledger`` (study/instance index), ``forwarder`` (workers and
backoff), ``transports`` and ``scu`` (DICOM and HTTP to the hub), ``transcode`` (lossless
re-encoding), ``manifest`` (origin and completeness calls to the hub API), ``statuses``
(exceptions -> DICOM statuses), ``sender`` (``yigong send``), ``cli``, ``config``, ``metrics``.
"""
