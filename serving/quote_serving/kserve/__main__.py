"""`python -m quote_serving.kserve --model_name NAME [--model HF_ID] [--http_port 8080] ...`."""

from quote_serving.kserve.server import main

if __name__ == "__main__":
    main()
