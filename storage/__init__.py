"""Storage: the only package that speaks SQL (SQLAlchemy Core, Alembic, psycopg).

Must not import any other Cairn package.
"""

__all__: list[str] = []
