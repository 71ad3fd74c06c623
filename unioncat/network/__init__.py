"""The local library network: real Z39.50/SRU, OAI-PMH and file-drop servers on loopback."""
