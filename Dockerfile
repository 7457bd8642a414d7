# The worker and enqueue commands in one small image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/ ./cmd/worker ./cmd/enqueue

FROM gcr.io/distroless/static-debian12:nonroot
# The base image's non-root user, by number: a certificate mounted from the
# host must be readable by uid or gid 65532 (README: "With docker compose").
USER 65532:65532
COPY --from=build /out/ /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/worker"]
