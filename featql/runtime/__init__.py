"""The offline engine: training sets and batch materialization on DuckDB and Spark (see
README.md in this folder). Engine modules are imported lazily; importing this package is cheap.
"""
