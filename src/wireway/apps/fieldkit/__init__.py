"""The field kit: Kismet's WiGLE CSV and GPS to Cursor-on-Target for TAK, with WigleToTAK's API."""
