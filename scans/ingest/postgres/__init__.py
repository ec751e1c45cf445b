"""The PostgreSQL engine: the diff in set-based SQL over COPYed staging tables.

``engine`` is the engine itself; it stages observations (``staging``, in the
format of ``copy_rows``), has large files parsed by several processes
(``parallel``), and runs the statements of ``sql`` (tables and choice values
filled in from the models by ``template``) over each batch (``apply``).
"""
