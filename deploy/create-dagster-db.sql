-- Run by the postgres image on its first start (empty pgdata volume): the Dagster instance's own database.
CREATE DATABASE dagster OWNER nova_user;
