"""A real RTSP server for the tests: GStreamer's gst-rtsp-server, run by the system Python (python3-gi).

    /usr/bin/python3 tests/servers/rtsp_server.py --port 8554 --file clip.mp4 [--user U --password P]
        [--tls-cert cert_and_key.pem]

Serves rtsp://127.0.0.1:PORT/cam: the file decoded and re-encoded live (H.264, key frame every
10 frames), looping. Prints "ready" once it listens. The tests kill it, SIGSTOP it, or restart it.
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gio, GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", help="the video to serve (not with --record)")
    parser.add_argument("--path", default="/cam")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--record", help="instead of serving: accept a pushed H.264 stream into this .ts file")
    parser.add_argument("--tls-cert", help="PEM certificate + key file: serve rtsps:// only")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    if args.record:
        factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
        factory.set_launch(f"( rtph264depay name=depay0 ! h264parse ! mpegtsmux ! filesink location={args.record} )")
    else:
        # multifilesrc loop=true restarts the file at its end, so the camera never ends.
        factory.set_launch(
            f"( multifilesrc location={args.file} loop=true ! decodebin ! videoconvert ! videoscale ! videorate "
            f"! video/x-raw,width={args.width},pixel-aspect-ratio=1/1,framerate={args.fps}/1 "
            f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 bitrate=800 "
            f"! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
    factory.set_shared(True)
    auth = GstRtspServer.RTSPAuth()
    if args.tls_cert:
        auth.set_tls_certificate(Gio.TlsCertificate.new_from_file(args.tls_cert))
        if not args.user:  # with an auth object set, anonymous clients need a token of their own
            anonymous = GstRtspServer.RTSPToken()
            anonymous.set_string("media.factory.role", "camera-user")
            auth.set_default_token(anonymous)
    if args.user:
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "camera-user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
    if args.user or args.tls_cert:
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_role_from_structure(Gst.Structure.new_from_string(
            "camera-user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        ))
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{args.port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
