"""The ingest: a scan's observations in; truthful changes and the inventory out.

All of PortWatch's semantics risk sits here, so the package is cut where it
changes, and every module says why it exists:

- ``entry``: the entry points, ``ingest()`` (a chunk's or a stream's
  observations) and ``ingest_file()`` (an nmap XML file on disk); they
  choose the engine once, settle each batch and announce the changes;
- ``imports``: a scan file imported as a run (nmap XML, masscan XML or JSON);
- ``diff``: the pure diff, the specification both engines are held to;
- ``engine``: the small interface the entry points need of an engine;
- ``orm``: the ORM engine (the SQLite default's);
- ``postgres``: the PostgreSQL engine, split into COPY encoding
  (``copy_rows``), staging, parallel parsing (``parallel``), the SQL
  (``sql``, filled from the models by ``template``) and applying it
  (``apply``);
- ``settle``: what the inventory derives from ports, after each batch.

Callers import what they use from the module that defines it (nothing is
re-exported here), so importing the pure ``diff`` loads nothing else.
"""
