"""Report documents: templates, PDF rendering, signatures, the community CA, verification.

Modules: ``templates`` (exam-type templates, zh-CN labels), ``pdf`` (render), ``signing``
(canonical JSON, pluggable algorithms, PAdES), ``ca`` (community CA and certificate store),
``verify`` (PDF validation), ``tasks`` (Celery). Import from the modules directly; this package
re-exports nothing so that importing it stays cheap (pyHanko and reportlab load on use).
"""
