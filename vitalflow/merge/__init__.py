"""Patient record merging: link source Patient records of one person into a person (golden record).

Matching, clustering and survivorship are plain functions over Arrow tables (no database);
`store` persists them in the restricted PostgreSQL schema `identity`, `engine` runs them there.
Splink is imported only when scoring, so this package loads without it.
"""
