-- Orthanc keeps its index in its own database next to the hub's.
CREATE DATABASE orthanc OWNER yigong;
