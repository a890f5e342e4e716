"""The MLflow tracking package; what a test checks is read back with ``mlflow.MlflowClient`` directly, never
through the code under test."""
