-- Run once by the postgres image on an empty data volume: POSTGRES_DB creates `prefect`,
-- this creates MLflow's database, owned by the same user.
CREATE DATABASE mlflow OWNER synthset;
